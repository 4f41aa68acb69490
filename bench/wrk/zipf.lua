-- URLs drawn the way sites are read: the item of rank r (1 is the most
-- popular) is asked for in proportion to 1 / r^s, over a catalogue of
-- `items` originals; <prefix><r - 1><suffix> names item r. The driver
-- puts the popular head in the cache before the run, so most requests
-- are hits and the long tail is made on demand.
--
--   wrk -s zipf.lua URL -- PREFIX SUFFIX ITEMS S

local threads_started = 0

function setup(thread)
  thread:set("id", threads_started)
  threads_started = threads_started + 1
end

local prefix, suffix, cumulative

function init(args)
  prefix, suffix = args[1], args[2]
  local items, s = tonumber(args[3]), tonumber(args[4])
  cumulative = {}
  local total = 0
  for r = 1, items do
    total = total + 1 / r ^ s
    cumulative[r] = total
  end
  for r = 1, items do
    cumulative[r] = cumulative[r] / total
  end
  math.randomseed(1000 + id)
end

-- The smallest rank whose cumulative share reaches u.
local function rank_of(u)
  local lo, hi = 1, #cumulative
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cumulative[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

function request()
  return wrk.format("GET", prefix .. (rank_of(math.random()) - 1) .. suffix)
end

done = require("report").done
