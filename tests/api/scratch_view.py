from test_cli_evals import cli, extraction_dataset, alignment_rows, UUID_RE, line_with
import json

def test_view(gateway, tmp_path):
    if gateway.backend != "sqlite":
        return
    ds = extraction_dataset(gateway)
    c = cli(gateway, "evals", "create", "--name", "view", "--dataset", ds, "--type", "head_to_head",
            "--model", "teacher-extract", "--model", "gpt-4o-mini", "--judge-model", "anthropic:judge-json")
    print(c.stdout); print("STDERR", c.stderr)
    eid = UUID_RE.search(c.stdout).group(0)
    for args in (["evals", "show", eid], ["evals", "rows", eid], ["evals", "list"]):
        print(cli(gateway, *args).stdout)
    cli(gateway, "criteria", "create", "v", "--judge-model", "anthropic:judge-json", "--instructions", "JSON\nobjects pass", "--description", "d")
    f = tmp_path / "r.jsonl"; f.write_text("".join(json.dumps(r) + "\n" for r in alignment_rows()))
    cli(gateway, "criteria", "align-upload", "v", str(f))
    a = cli(gateway, "criteria", "align", "v"); print(a.stdout, "STDERR", a.stderr)
    for args in (["criteria", "stats", "v"], ["criteria", "show", "v"], ["criteria", "list"], ["criteria", "compare", "v"]):
        print(cli(gateway, *args).stdout)
    assert False
