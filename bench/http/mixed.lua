-- wrk: mixed load, 3 writes (single events, producer key) for every read (a 50-event customer
-- timeline page, reader key). Each read is itself recorded by the service.
dofile(os.getenv("BENCH_DIR") .. "/post-single.lua")

local reads = 0
function request()
  counter = counter + 1
  if counter % 4 == 0 then
    reads = reads + 1
    return wrk.format("GET", "/v1/subjects/cust-" .. (reads % 10007) .. "/timeline?limit=50", {["Authorization"] = "Bearer " .. os.getenv("EVIDENT_READER_KEY")})
  end
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("EVIDENT_API_KEY")}, event(counter))
end
