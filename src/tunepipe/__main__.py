from tunepipe.cli.main import app

app(prog_name="tunepipe")
