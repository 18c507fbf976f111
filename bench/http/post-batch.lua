-- wrk: 100 events per POST as NDJSON, unique ids.
dofile(os.getenv("BENCH_DIR") .. "/post-single.lua")

function request()
  local lines = {}
  for i = 1, 100 do
    counter = counter + 1
    lines[i] = event(counter)
  end
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/x-ndjson", ["Authorization"] = "Bearer " .. os.getenv("EVIDENT_API_KEY")}, table.concat(lines, "\n"))
end
