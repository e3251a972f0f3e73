module github.com/govscsi/govscsi

go 1.26.0
