"""`python -m crossguard.audio`: run the audio safety gRPC service (see crossguard.audio.server)."""

from crossguard.audio.server import main

if __name__ == "__main__":
    main()
