"""How many threads a test's llama.cpp model decodes with.

`make test` runs the suite in two pytest-xdist processes on a 2-core machine: two models decoding
with two threads each would put four spinning threads on two cores, and llama.cpp's thread
barriers then make every token 10-30x slower. So under xdist a test decodes with one thread, and
with two when it has the machine to itself. tests/conftest.py sets OPENLID_THREADS=1 under xdist
as well, which reaches every model whose settings say 0 (automatic): CLI runs, servers, workers.
"""

import os

TEST_THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2
