from bubblechain.cli import main

main()
