-- rest-pipeline.lua - wrk script: HTTP/1.1 pipelining, WRK_PIPELINE requests (default 16) in one write per
-- connection; wrk counts every response, so Requests/sec stays requests. Headers given with -H are included.
--     WRK_PIPELINE=16 wrk -t1 -c64 -d10s -s perf/rest-pipeline.lua http://127.0.0.1:8080/healthz
-- A different workload from the keep-alive target (one request in flight per connection): report it apart.
local depth = tonumber(os.getenv("WRK_PIPELINE") or "16")
local batch

init = function(args)
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil)
   end
   batch = table.concat(r)
end

request = function()
   return batch
end
