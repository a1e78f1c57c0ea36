"""How many threads a test's llama.cpp model decodes with.

`make test` runs the suite in two pytest-xdist processes on a 2-core machine: two models decoding
with two threads each would put four spinning threads on two cores, and llama.cpp's thread
barriers then make every token 10-30x slower. So tests/conftest.py sets OPENLID_THREADS=1 under
xdist, which reaches every model whose settings say 0 (automatic): CLI runs, servers, workers;
TEST_THREADS is the same rule for the tests that name a thread count (one per core alone).
"""

from desktop.core.hardware import default_threads

# tests/conftest.py, imported before any test module, has set OPENLID_THREADS under xdist.
TEST_THREADS = default_threads()
