from storyc.cli import console

raise SystemExit(console())
