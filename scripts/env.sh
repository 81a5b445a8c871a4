# Sourced by the scripts: puts cargo-installed tools and npm's wasm-opt on PATH.
export PATH="$HOME/.cargo/bin:$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tools/node_modules/.bin:$PATH"
