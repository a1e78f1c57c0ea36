"""The X-ray window: what each turn's prompt was made of, what the KV cache reused, what the
overflow policy drops (`view.XrayView`, `plot.SizePlot`)."""
