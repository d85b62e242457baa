-- GET /users/me cycling through many sessions' tokens (LOAD_TOKENS, one per
-- line), each thread from its own place, so that the server's caches miss.
local tokens = {}
for line in io.lines(os.getenv("LOAD_TOKENS")) do
  tokens[#tokens + 1] = line
end
local i = 0
setup = function(thread)
  i = i + 1
  thread:set("start", i * 7919)
end
init = function()
  i = start or 0
end
request = function()
  i = i + 1
  local tok = tokens[(i % #tokens) + 1]
  return wrk.format("GET", "/users/me", {["Authorization"] = "Bearer " .. tok})
end
