"""The Hugging Face Hub as plain values: search and repo details (`client`), filters, the HTTP
plumbing shared with downloads (`http`) and what a file name says (`quant`)."""
