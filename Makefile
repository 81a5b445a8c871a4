# The two commands of the README.
.PHONY: run test setup
run:            ## install what is missing, build the client, start the server on :3000
	scripts/run.sh
test:           ## every test layer (installs Chromium etc. when missing)
	scripts/test.sh
setup:
	scripts/setup.sh test
