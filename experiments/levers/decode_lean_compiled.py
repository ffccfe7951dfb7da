import torch, time, sys, math
import torch.nn.functional as F
sys.path.insert(0,'.')
from model import CharTransformer, ModelConfig, LayerCache
torch.manual_seed(0)
m=CharTransformer(ModelConfig(vocab_size=65)).eval()
cfg=m.cfg
def lean_step(tok, pos, caches):
    x = m.tok_emb.weight[tok] * math.sqrt(cfg.d_model) + m.pos_table[pos]   # (B, d)
    x = x[:, None, :]
    for blk, c in zip(m.blocks, caches):
        h = F.layer_norm(x, (cfg.d_model,), blk.ln1.weight, blk.ln1.bias)
        q, k, v = F.linear(h, blk.attn.qkv.weight, blk.attn.qkv.bias).view(1, 1, 3, cfg.n_heads, -1).permute(2,0,3,1,4)
        kk, vv = c.append(k, v)
        y = F.scaled_dot_product_attention(q, kk, vv)
        x = x + F.linear(y.transpose(1,2).reshape(1,1,-1), blk.attn.proj.weight, blk.attn.proj.bias)
        h = F.layer_norm(x, (cfg.d_model,), blk.ln2.weight, blk.ln2.bias)
        x = x + F.linear(F.gelu(F.linear(h, blk.ff.up.weight, blk.ff.up.bias)), blk.ff.down.weight, blk.ff.down.bias)
    x = F.layer_norm(x, (cfg.d_model,), m.ln_f.weight, m.ln_f.bias)
    return F.linear(x, m.head.weight)[:, -1]
with torch.inference_mode():
  for rep in range(3):
    caches=[LayerCache(1,cfg,'cpu',torch.float32) for _ in m.blocks]
    tok=torch.zeros(1,dtype=torch.long)
    t=time.perf_counter()
    for i in range(127):
        logits=lean_step(tok,i,caches)
        tok=logits.argmax(-1)
    lean=127/(time.perf_counter()-t)
    caches=[LayerCache(1,cfg,'cpu',torch.float32) for _ in m.blocks]
    tok=torch.zeros(1,1,dtype=torch.long)
    t=time.perf_counter()
    for i in range(127):
        logits,_=m(tok,caches=caches)
        tok=logits[:,-1].argmax(-1,keepdim=True)
    mod=127/(time.perf_counter()-t)
    g=torch.Generator().manual_seed(0)
    lg=torch.randn(1,65)
    t=time.perf_counter()
    for i in range(1000): torch.multinomial(torch.softmax(lg,-1),1,generator=g)
    mult=(time.perf_counter()-t)
    t=time.perf_counter()
    for i in range(1000):
        p=torch.softmax(lg,-1).cumsum(-1); torch.searchsorted(p, torch.rand(1,1,generator=g)*p[:, -1:])
    ss=(time.perf_counter()-t)
    print('lean tok/s', round(lean), 'module tok/s', round(mod), 'multinomial us', mult*1000, 'searchsorted us', ss*1000)
cl = torch.compile(lean_step, dynamic=True)
with torch.inference_mode():
  t=time.perf_counter()
  caches=[LayerCache(1,cfg,'cpu',torch.float32) for _ in m.blocks]
  tok=torch.zeros(1,dtype=torch.long)
  for i in range(3): logits=cl(tok,i,caches)
  print('compile s', time.perf_counter()-t)
  for rep in range(3):
    caches=[LayerCache(1,cfg,'cpu',torch.float32) for _ in m.blocks]
    tok=torch.zeros(1,dtype=torch.long)
    t=time.perf_counter()
    for i in range(127):
        logits=cl(tok,i,caches)
        tok=logits.argmax(-1)
    print('compiled lean tok/s', round(127/(time.perf_counter()-t)))
