"""`python -m crossguard.text`: run the text safety gRPC service (see crossguard.text.server)."""

from crossguard.text.server import main

if __name__ == "__main__":
    main()
