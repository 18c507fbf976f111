-- wrk: GET one of the paths listed (one per line) in $BENCH_PATHS, round robin, reader key.
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do table.insert(paths, line) end
local i = 0
function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], {["Authorization"] = "Bearer " .. os.getenv("EVIDENT_READER_KEY")})
end
