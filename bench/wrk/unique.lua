-- Every request a path not asked for before in this run, so nothing is
-- served from a cache: <prefix><n><suffix>, where the source root holds
-- hard links 0 .. links-1 of one original. Threads take turns with n.
-- PREFIXES and SUFFIXES may each hold several, separated by spaces:
-- requests then cycle through the pairs (a mix of conversions).
--
--   wrk -s unique.lua URL -- PREFIXES SUFFIXES LINKS THREADS

local threads_started = 0

function setup(thread)
  thread:set("id", threads_started)
  threads_started = threads_started + 1
end

local prefixes, suffixes, links, step, n

local function words(text)
  local list = {}
  for word in text:gmatch("%S+") do list[#list + 1] = word end
  return list
end

function init(args)
  prefixes, suffixes = words(args[1]), words(args[2])
  links, step = tonumber(args[3]), tonumber(args[4])
  n = id
end

function request()
  local pair = n % #prefixes + 1
  local path = prefixes[pair] .. (n % links) .. suffixes[pair]
  n = n + step
  return wrk.format("GET", path)
end

done = require("report").done
