module github.com/gpunode/gpunode

go 1.26.0
