-- wrk script: POST the files listed in $FILE_LIST in turn (one body each, read at start) to
-- $PATH_, with Content-Type $CTYPE and an optional Authorization header $AUTH. Each of the
-- $THREADS (2) threads starts at its own share of the list, so no body is sent twice until a
-- thread has gone through its share.
local bodies = {}
for line in io.lines(os.getenv("FILE_LIST")) do
  local f = io.open(line, "rb")
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
local headers = { ["Content-Type"] = os.getenv("CTYPE") }
local auth = os.getenv("AUTH")
if auth and auth ~= "" then
  headers["Authorization"] = auth
end
local path = os.getenv("PATH_")
local threads = tonumber(os.getenv("THREADS") or "2")
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local i = 0
function init(args)
  i = (id or 0) * math.floor(#bodies / threads)
end
request = function()
  i = (i % #bodies) + 1
  return wrk.format("POST", path, headers, bodies[i])
end
