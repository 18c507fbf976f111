-- wrk: one event per POST, each with a unique id (thread id + counter).
counter, thread_id = 0, 0  -- globals: thread:set() and the scripts that dofile() this one use them
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

local template = [[{"id":"wrk-%d-%d","source":"//crm.example.com/support-api","type":"customer.record.updated","action":"update","time":"2026-11-26T10:00:00Z","actor":{"id":"agent-%d","type":"user","display":"Agent %d"},"subject":"cust-%d","targets":[{"type":"customer","id":"cust-%d"}],"outcome":"success","reason":"customer asked to update contact details","changes":[{"field":"/email","before":"c%d@old.example.com","after":"c%d@new.example.com"}],"origin":{"ip":"10.1.%d.%d","service":"support-api"},"data_classes":["pii"]}]]

function event(n)
  local c = n % 10007
  return string.format(template, thread_id, n, n % 97, n % 97, c, c, c, c, n % 250, n % 199)
end

function request()
  counter = counter + 1
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("EVIDENT_API_KEY")}, event(counter))
end
