-- wrk script: POST DER OCSP requests, rotating through every file in $REQ_DIR.
local dir = os.getenv("REQ_DIR")
local bodies = {}
local p = io.popen('ls "' .. dir .. '"')
for name in p:lines() do
  local f = io.open(dir .. "/" .. name, "rb")
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
p:close()
local i = 0
request = function()
  i = (i % #bodies) + 1
  return wrk.format("POST", "/ocsp", { ["Content-Type"] = "application/ocsp-request" }, bodies[i])
end
