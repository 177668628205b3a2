from kudos.cli import main

raise SystemExit(main())
