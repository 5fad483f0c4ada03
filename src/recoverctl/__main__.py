from recoverctl.cli.app import main

main()
