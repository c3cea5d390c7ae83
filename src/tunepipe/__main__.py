from tunepipe.cli.main import run

run()
