module pallet.invalid/kind-node-build/pause

go 1.24.0
