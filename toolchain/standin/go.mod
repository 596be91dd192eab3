module meshkit.local/standin

go 1.25
