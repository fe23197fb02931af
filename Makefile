# Two commands do everything on a fresh machine (they create .venv and install on first use):
#   make demo   end-to-end demo on the bundled digits
#   make test   nbdev_export/nbdev_clean leave the tree unchanged, nbdev_test, pytest
#   make lab    JupyterLab on nbs/ with the project's kernel (backdoor_nb, registered by make install)
.PHONY: demo test install docs slow bench clean lab
install:
	bash tools/env.sh
demo: install
	MPLBACKEND=Agg .venv/bin/backdoor_nb demo
test:
	bash tools/test.sh
slow: install
	MPLBACKEND=Agg .venv/bin/nbdev_test --flags slow --n_workers 1
lab: install
	.venv/bin/jupyter lab --ServerApp.root_dir=nbs $$([ "$$(id -u)" = 0 ] && echo --allow-root)
docs: install
	MPLBACKEND=Agg .venv/bin/python tools/build_docs.py
bench: install
	MPLBACKEND=Agg .venv/bin/python benchmarks/run_all.py
clean:
	rm -rf _docs _proc site build *.egg-info
