from recoverctl.entry import main

main()
