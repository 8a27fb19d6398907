-- wrk script: POST the same signing request over and over. $BODY_FILE holds the JSON body,
-- $BEARER an optional bearer token, $PATH_ the request path.
local f = io.open(os.getenv("BODY_FILE"), "rb")
local body = f:read("*a")
f:close()
local headers = { ["Content-Type"] = "application/json" }
local bearer = os.getenv("BEARER")
if bearer and bearer ~= "" then
  headers["Authorization"] = "Bearer " .. bearer
end
local path = os.getenv("PATH_")
request = function()
  return wrk.format("POST", path, headers, body)
end
