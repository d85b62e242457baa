-- POST /token with grant_type=refresh_token, each thread following its own
-- chain: the refresh token of each answer is the next request's. Run it
-- with as many threads as connections (-tN -cN), so that no chain has two
-- requests in flight. LOAD_REFRESH is a file of refresh tokens, one per
-- line, one per thread.
local tokens = {}
for line in io.lines(os.getenv("LOAD_REFRESH")) do
  tokens[#tokens + 1] = line
end
local n = 0
setup = function(thread)
  n = n + 1
  thread:set("current", tokens[n])
end
request = function()
  return wrk.format("POST", "/token", {["Content-Type"] = "application/x-www-form-urlencoded"},
    "grant_type=refresh_token&refresh_token=" .. current)
end
response = function(status, headers, body)
  local rt = body:match('"refresh_token":"([^"]+)"')
  if rt then
    current = rt
  end
end
