# make demo: set up .venv and run train -> gen -> analyze on the shipped lambda phage genome.
# make test: set up .venv and run the test suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0
DEMO_MODEL ?= seqgan
DEMO_TRAIN ?= --budget 100
DEMO_SET ?= --set train.eval_samples=200

.PHONY: setup demo test bench clean gpu-wheels

setup: $(STAMP)

# Without a CUDA GPU, install the CPU build of torch first (a local wheel where the machine has
# one, else PyTorch's CPU index), so the requirements' torch range is already met and no CUDA
# wheels are downloaded.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  $(BIN)/pip install -q "torch==$(TORCH_VERSION)"; \
	elif ls /opt/wheels/torch-$(TORCH_VERSION)+cpu-*.whl >/dev/null 2>&1; then \
	  $(BIN)/pip install -q "torch==$(TORCH_VERSION)"; \
	else \
	  $(BIN)/pip install -q "torch==$(TORCH_VERSION)" --index-url https://download.pytorch.org/whl/cpu; \
	fi
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python main.py --mode train --model $(DEMO_MODEL) --data data/example_genome.fasta \
	  --seq_len 70 $(DEMO_TRAIN) $(DEMO_SET) --overwrite --run_dir runs/demo_$$(date +%Y%m%d-%H%M%S)
	$(BIN)/python main.py --mode gen --checkpoint checkpoints/$(DEMO_MODEL)_best.pt --n 150 \
	  --data data/example_genome.fasta
	$(BIN)/python analyze_sequences.py --generated outputs/generated.fasta \
	  --data data/example_genome.fasta --output-dir outputs/analysis

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python bench/read_speed.py
	$(BIN)/python bench/quality.py --model markov --budget 600

clean:
	rm -rf $(VENV) runs outputs/analysis

# Wheels the device machine's image lacks (Biopython), for bench/gpu_checks.sh: carry .whl in the call.
gpu-wheels: $(STAMP)
	mkdir -p .whl
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl "biopython==$$($(BIN)/python -c 'import Bio; print(Bio.__version__)')"
