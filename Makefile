# The two commands of the README, plus the benchmark.
.PHONY: test demo bench setup test-pg17 package test-package
test:
	bash scripts/test.sh
demo:
	bash scripts/demo.sh
bench:
	bash scripts/bench.sh
setup:
	bash scripts/setup.sh
test-pg17:
	bash scripts/test-pg17.sh
package:
	bash scripts/package.sh
test-package:
	bash scripts/test-package.sh
