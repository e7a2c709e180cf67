"""The VS Code extension (editors/vscode): its grammar passes vscode-tmgrammar-test, and
its manifest, grammar and extension hang together.

The grammar tests install the extension's npm packages (vscode-tmgrammar-test, from the
npm registry, pinned by package-lock.json) and run `npm test`; where Node or npm is
missing they fail: Node.js and npm are part of the test machine.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from storyc.lang.syntax_errors import KEYWORDS

EXT = Path(__file__).resolve().parent.parent / "editors" / "vscode"


def test_manifest_grammar_and_configuration_agree() -> None:
    manifest = json.loads((EXT / "package.json").read_text("utf-8"))
    (lang,) = manifest["contributes"]["languages"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert lang["extensions"] == [".story"] and grammar["language"] == lang["id"]
    assert grammar["scopeName"] == "source.story"
    tm = json.loads((EXT / grammar["path"]).read_text("utf-8"))
    assert tm["scopeName"] == "source.story"
    config = json.loads((EXT / lang["configuration"]).read_text("utf-8"))
    assert config["comments"] == {"lineComment": "#", "blockComment": ["/*", "*/"]}
    assert "vscode-languageclient" in manifest["dependencies"]
    # every declaration keyword of the language is highlighted as one
    declared = set(
        re.findall(
            r"[a-z]+", " ".join(p["match"] for p in tm["repository"]["declarations"]["patterns"])
        )
    )
    assert set(KEYWORDS) <= declared, set(KEYWORDS) - declared


def test_extension_script_parses() -> None:
    r = subprocess.run(
        ["node", "--check", str(EXT / "extension.js")], capture_output=True, timeout=60
    )
    assert r.returncode == 0, r.stderr


def test_grammar_snapshot_tests_pass() -> None:
    if not (EXT / "node_modules" / ".bin" / "vscode-tmgrammar-test").exists():
        r = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=EXT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["npm", "test"], cwd=EXT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "run successfuly" in r.stdout  # (sic: the tool's own spelling)
