# The two commands a newcomer needs: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The default job, sized for a 2-core CPU in about 5 minutes: 10 epochs per model, the first 200
# test images, and a C&W search of 5 x 100 Adam steps (lr 0.1) from c = 0.1. The cw config
# default is the reference's search (9 steps from c = 1e-3, lr 0.01, up to 1,000 iterations
# each): drop these --set flags on a GPU.
RUN_ARGS ?= --epochs 10 --n-eval 200 \
	--set cw.binary_search_steps=5 --set cw.max_iterations=100 \
	--set cw.initial_const=0.1 --set cw.learning_rate=0.1

.PHONY: run test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/bench run --defense vanilla,defensive-distillation --attacks pgd,cw --dataset mnist-5k $(RUN_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs .pytest_cache
