from bubblechain.cli.main import main

main()
