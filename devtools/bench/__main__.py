from devtools.bench.run import main

main()
