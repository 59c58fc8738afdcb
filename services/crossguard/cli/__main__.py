from crossguard.cli.main import main

main()
