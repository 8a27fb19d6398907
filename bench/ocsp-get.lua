-- wrk script: GET /ocsp/<url-encoded base64 request>, rotating through the lines of $REQ_LIST.
local paths = {}
for line in io.lines(os.getenv("REQ_LIST")) do
  paths[#paths + 1] = line
end
local i = 0
request = function()
  i = (i % #paths) + 1
  return wrk.format("GET", paths[i])
end
