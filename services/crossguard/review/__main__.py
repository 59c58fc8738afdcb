from crossguard.review.service import main

main()
