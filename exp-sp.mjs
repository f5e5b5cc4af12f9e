import * as fs from 'node:fs';
import { DiskStorage } from './dist/src/storage/diskStorage.js';
import { NodeFileSystem } from './dist/src/storage/nodeFs.js';
const seg = Number(process.argv[2]) << 20;
const dir='/var/tmp/spexp'; fs.rmSync(dir,{recursive:true,force:true}); fs.mkdirSync(dir,{recursive:true});
const st = DiskStorage.open({ fs: new NodeFileSystem(), dir, clusterId:'c', memberId:1, segmentBytes: seg, cacheBytes: 1<<20 });
const data = new Uint8Array(4096).fill(7);
let next=1;
function run(ms){ return new Promise(res=>{ let bytes=0; const t0=performance.now(); const sub=()=>{ const e=[]; for(let k=0;k<4096;k++) e.push({term:1,index:next++,type:'normal',data}); st.save({entries:e, hardState:{term:1,vote:1,commit:next-1}}, err=>{ if(err) throw err; bytes+=4096*4128; if(performance.now()-t0<ms) sub(); else res(bytes/(performance.now()-t0)/1000); }); }; sub(); }); }
for (let r=0;r<4;r++) console.log('seg', seg>>20, 'MiB:', (await run(1000)).toFixed(0), 'MB/s', st.segmentFiles().length, 'segments');
st.close(); fs.rmSync(dir,{recursive:true});
