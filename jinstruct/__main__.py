from jinstruct.cli import main

raise SystemExit(main())
