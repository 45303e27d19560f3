# The two commands of the README, plus the benchmark.
.PHONY: test demo bench setup
test:
	bash scripts/test.sh
demo:
	bash scripts/demo.sh
bench:
	bash scripts/bench.sh
setup:
	bash scripts/setup.sh
