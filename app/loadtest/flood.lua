-- POST /token with wrong passwords for many different accounts.
local counter = 0
request = function()
  counter = counter + 1
  local body = "username=victim" .. (counter % 5000) .. "&password=wrong-password-" .. counter
  return wrk.format("POST", "/token", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
