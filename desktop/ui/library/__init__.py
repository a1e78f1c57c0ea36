"""The Models panel: the library list and its entries, discovery, remote-model entries and the
controller of which model is loaded. GUI thread only."""
