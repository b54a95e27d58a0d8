from mimir_limit_optimizer.cli.main import main

main()
