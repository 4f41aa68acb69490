-- One URL over and over (the hit path, the static file): wrk's default
-- request, with the benchmark's closing line.
done = require("report").done
