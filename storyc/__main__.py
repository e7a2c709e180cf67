from storyc.cli import main

raise SystemExit(main())
