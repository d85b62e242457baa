-- POST /token with a new 900-byte login name every time: each would be a
-- new throttle key if the store did not bound them.
local counter = 0
local pad = string.rep("x", 880)
request = function()
  counter = counter + 1
  local body = "username=" .. counter .. "-" .. pad .. "&password=wrong-password"
  return wrk.format("POST", "/token", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
