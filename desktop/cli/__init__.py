"""`openlid <verb>`: the command line over the same core, engine and server as the app. No Qt."""
