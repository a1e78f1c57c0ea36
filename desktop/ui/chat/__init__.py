"""Chat and completion: the controller of one turn, the transcript and its message widgets, the
conversation list and the store's database thread. GUI thread unless a module says otherwise."""
