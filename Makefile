# The two commands a newcomer needs: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The default job, sized for a 2-core CPU in about 5 minutes: vanilla and defensive distillation
# (5 epochs each), attacked at L∞ 0.3 on the first 100 test images with the L∞ minimum suite
# (AutoAttack, PGD on the margin loss, Square; docs/leaderboard.md) plus PGD on cross-entropy,
# the number a distillation paper reports. Distillation's masking is flagged, the adaptive stage
# attacks it the way its symptoms call for, and it is ranked at what survives them, never at PGD's ~90%.
RUN_ARGS ?= --epochs 5 --n-eval 100

.PHONY: run test install clean republish republish-plan

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/bench run --defense vanilla,defensive-distillation --attacks pgd,pgd-margin,autoattack,square \
		--norm linf --dataset mnist-5k $(RUN_ARGS)

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs .pytest_cache .hypothesis

# The published board (leaderboard/, docs/leaderboard.md "Republishing the board"): every defense,
# three threat models with their budget sweeps, the whole test split, into the store committed
# beside it. Each piece is resumable: finished nodes are read from the store, never recomputed.
STORE := leaderboard/store
BOARD_RUN = $(BIN)/bench run --defense all --dataset mnist-5k --binarization 100 --out $(STORE) --leaderboard runs/republish.md
# At L2, C&W runs 5 search steps × 100 iterations (its default, 9 × 1,000, would cost about 14 h
# of the 2-core machine on its own); ddn-margin meets the minimal-norm requirement, and where C&W
# stops short the attack-failure indicators (W3, W4) run its remedies (docs/masking.md).
CW_L2 := --set cw.binary_search_steps=5 --set cw.max_iterations=100
# The other budgets of a sweep run a cheaper suite (no AutoAttack, no Square: about 50 min per
# robust model and budget here): their points are upper bounds, drawn and listed as such.
SWEEP_ATTACKS := --attacks pgd,pgd-margin,apgd,fmn,noise,transfer,ibp,crown-ibp
PIECES := "--norm linf --eps 0.3 --attacks all" "--norm linf --eps 0.1,0.2,0.4 $(SWEEP_ATTACKS),fgsm" \
	"--norm l2 --eps 2.0 --attacks all $(CW_L2)" "--norm l2 --eps 1.0,3.0 $(SWEEP_ATTACKS),ddn-margin" \
	"--norm l0 --eps 5,10,20,40 --attacks all"

republish: $(STAMP)
	@for piece in $(PIECES); do echo "== bench run ... $$piece"; $(BOARD_RUN) $$piece || exit $$?; done
	$(BIN)/bench leaderboard publish --include-store --replace --out $(STORE) --dest leaderboard

republish-plan: $(STAMP)
	@for piece in $(PIECES); do echo "== bench run ... $$piece"; $(BOARD_RUN) $$piece --dry-run | tail -3; done
