"""Checks Deploy/ as an SRE would before applying it: every Kubernetes manifest against the API's schema (strict:
no unknown fields), and every `promo` flag that a manifest, a systemd unit or the container uses against the
built binary's own --help. Run by Deploy/test.sh after the build:

    python3 Tests/Fixtures/check_deploy.py PATH/TO/promo
"""
import pathlib
import re
import shlex
import subprocess
import sys

import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBERNETES = "1.30.0"
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def help_flags(promo, command):
    """The long flags `promo <command> --help` lists (with --help itself)."""
    out = subprocess.run([promo, *command, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"--[a-z0-9][a-z0-9-]*", out)) | {"--help"}


def check_flags(where, promo, args):
    """args: the promo command line (subcommand first). Unknown long flags are problems."""
    words = [a for a in args if not a.startswith("$")]
    if not words:
        return
    command = [words[0]] if words[0] != "model" else words[:2]
    known = help_flags(promo, command)
    for flag in (a.split("=", 1)[0] for a in words if a.startswith("--")):
        if flag not in known:
            problem(where, f"`promo {' '.join(command)}` has no flag {flag}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_deploy.py PATH/TO/promo")
    promo = sys.argv[1]
    checked = 0
    for path in sorted((ROOT / "Deploy/k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            where = f"{path.relative_to(ROOT)} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, KUBERNETES, strict=True)
            except kubernetes_validate.ValidationError as error:
                problem(where, f"{error.message} at {'.'.join(map(str, error.path))}")
            checked += 1
            # Every container's args are a promo command line.
            spec = doc.get("spec", {})
            template = spec.get("jobTemplate", {}).get("spec", {}).get("template") or spec.get("template") or {}
            for container in template.get("spec", {}).get("containers", []):
                check_flags(f"{where} container {container['name']}", promo, container.get("args", []))
    for path in sorted((ROOT / "Deploy/systemd").glob("*.service")):
        for line in path.read_text().splitlines():
            if line.startswith("ExecStart="):
                words = shlex.split(line.split("=", 1)[1])
                check_flags(f"{path.relative_to(ROOT)} ExecStart", promo, words[1:])
    containerfile = (ROOT / "Deploy/container/Containerfile").read_text()
    if "setup.sh --build-only" not in containerfile:
        problem("Deploy/container/Containerfile", "the build stage must run `Deploy/setup.sh --build-only`")
    for ignore in (".containerignore", ".dockerignore"):
        entries = (ROOT / ignore).read_text().split() if (ROOT / ignore).exists() else []
        if ".build" not in entries:
            problem(ignore, "must keep .build out of the build context")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"check_deploy: {checked} Kubernetes objects valid against {KUBERNETES} (strict); flags of every manifest and unit known to promo")


if __name__ == "__main__":
    main()
