from crossguard.consistency.server import main

main()
