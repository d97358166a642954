-- SPDX-License-Identifier: MIT
-- For the specs that check our tokens against PyJWT's (spec/keys_spec.lua states, spec/tickets_spec.lua tickets): a private
-- temporary directory of key files made with openssl (RSA 2048, EC P-256 and P-384, Ed25519) and
-- an HS256 secret, one key pair per algorithm to go through, and a runner for Python scripts.
local keys = require("eternaltwin.keys")
local shell_quote = require("spec.support.mock").shell_quote

local M = {}

-- Debian's Python, with PyJWT (python3-jwt); the pyenv one first on PATH lacks it.
M.PY = "/usr/bin/python3"

-- { algorithm, private key file, public key file }
M.CASES = { { "HS256", "hs.secret", "hs.secret" }, { "RS256", "rsa.pem", "rsa.pub" },
            { "PS256", "rsa.pem", "rsa.pub" }, { "ES256", "ec.pem", "ec.pub" },
            { "EdDSA", "ed.pem", "ed.pub" } }

local OPENSSL = {
  "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem", "pkey -in rsa.pem -pubout -out rsa.pub",
  "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem", "pkey -in ec.pem -pubout -out ec.pub",
  "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384.pem", "pkey -in ec384.pem -pubout -out ec384.pub",
  "genpkey -algorithm ED25519 -out ed.pem", "pkey -in ed.pem -pubout -out ed.pub",
}

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

local Dir = {}
Dir.__index = Dir

--- Makes the directory (mode 700) with the key files and `hs.secret` holding `secret`. Its field
-- `have_py` says whether PyJWT (with cryptography) can be imported.
function M.new(secret)
  local d = setmetatable({ dir = os.tmpname() }, Dir)
  os.remove(d.dir)
  assert(sh("mkdir -m 700 " .. shell_quote(d.dir)))
  for _, cmd in ipairs(OPENSSL) do
    assert(sh("cd " .. shell_quote(d.dir) .. " && openssl " .. cmd), cmd)
  end
  d:write("hs.secret", secret)
  d.have_py = sh(M.PY .. " -c 'import jwt, cryptography'")
  return d
end

function Dir:path(name) return self.dir .. "/" .. name end

--- A file's content (keys.read_file: the way the module reads key files).
function Dir:text(name) return assert(keys.read_file(self:path(name))) end

function Dir:write(name, content)
  local f = assert(io.open(self:path(name), "w"))
  f:write(content)
  f:close()
end

--- Runs the Python script `name` of the directory with the arguments (each shell-quoted); its
-- output (stdout and stderr), trailing blanks trimmed.
function Dir:python(name, ...)
  local args = { M.PY, shell_quote(self:path(name)) }
  for i = 1, select("#", ...) do args[#args + 1] = shell_quote(tostring((select(i, ...)))) end
  local p = io.popen(table.concat(args, " ") .. " 2>&1")
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

function Dir:remove() sh("rm -rf " .. shell_quote(self.dir)) end

return M
